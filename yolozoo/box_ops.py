"""Box utilities. Boxes are ``[..., 4]``; formats are ``xyxy`` (corners) or ``cxcywh``.

Pairwise and element-wise IoU-family ops come from ``torchvision.ops``; this module adds
the broadcasting, fp32 wrappers that assigners and losses need.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_convert, box_iou, complete_box_iou_loss, generalized_box_iou_loss  # noqa: F401


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "xyxy", "cxcywh")


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    return box_convert(boxes, "cxcywh", "xyxy")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes ``[..., 4]`` -> ``[...]`` (0 for inverted boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def aligned_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = 1e-7) -> torch.Tensor:
    """Element-wise IoU-family overlap of broadcastable xyxy boxes ``[..., 4]`` -> ``[...]``.

    kind: ``iou``, ``giou`` or ``ciou`` (Zheng et al. 2020). Computed in fp32 whatever the
    input dtype, so it is safe under autocast.
    """
    b1, b2 = torch.broadcast_tensors(boxes1.float(), boxes2.float())
    if kind == "iou":
        lt = torch.maximum(b1[..., :2], b2[..., :2])
        rb = torch.minimum(b1[..., 2:], b2[..., 2:])
        inter = (rb - lt).clamp(min=0).prod(-1)
        return inter / (box_area(b1) + box_area(b2) - inter + eps)
    if kind == "giou":
        return 1 - generalized_box_iou_loss(b1, b2, eps=eps)
    if kind == "ciou":
        return 1 - complete_box_iou_loss(b1, b2, eps=eps)
    raise ValueError(f"unknown IoU kind {kind!r}; valid: iou, giou, ciou")


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
